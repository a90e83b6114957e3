% rebase('layout', title='标签绑定 Tag binding')
% if problem:
<p class="problem" id="problem">{{problem}}</p>
% end
% if result is not None:
<div id="result" class="ok">
  <p class="verdict">{{'已改绑 REBOUND' if result['rebound_from'] else '已绑定 BOUND'}} · {{result['cylinder_id']}}</p>
% if result['rebound_from']:
  <p id="rebound">原属气瓶 taken from cylinder {{result['rebound_from']}}</p>
% end
  <p>{{result['tag_kind']}}: {{result['tag_value']}} · {{len(result['photos'])}} 张照片 photos, 待上传 queued for the city</p>
</div>
% end
<form method="post" action="/bind" id="binding" enctype="multipart/form-data">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <label>标签类型 Tag
    <select name="tag_kind" id="tag_kind"><option value="qr">二维码 QR</option><option value="rfid">RFID</option></select></label>
  <label>新标签 New tag</label>
  % include('scan', field='tag', value='', placeholder='扫描新标签 Scan the new tag')
  <label>钢印号 Stamp code <input name="stamp" id="stamp" required maxlength="50" autocapitalize="characters"></label>
  <label>钢印照片 Stamp photos (1-4)
    <input type="file" name="photos" id="photos" accept="image/jpeg,image/png" capture="environment" multiple required></label>
  <div id="previews" class="previews"></div>
% if me is not None and me.role == 'manager':
  <label>改绑原因 Reason to rebind a tag bound to another cylinder (站长 manager only)
    <input name="rebind_reason" id="rebind_reason" maxlength="200"></label>
% end
  <button id="bind">核对后提交 Review and submit</button>
</form>
